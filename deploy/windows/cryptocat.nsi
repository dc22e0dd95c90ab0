; Cryptocat's Windows installer, built on Linux with Debian's makensis (package `nsis`):
; nothing is downloaded, no NSIS plugin beyond those Debian ships. `scripts/package
; --windows` runs it as
;
;   makensis -DVERSION=0.1.0 -DBUILD=DIR -DOUTFILE=FILE deploy/windows/cryptocat.nsi
;
; where DIR holds cryptocat-desktop.exe, WebView2Loader.dll, cryptocat.exe and
; cryptocat-server.exe (x86_64-pc-windows-gnu); -DCOMPRESSOR=zlib for CI's quick debug
; installer (solid LZMA otherwise). Paths here are relative to this file (makensis changes
; into its directory).
;
; A per-user install (no administrator rights): %LOCALAPPDATA%\Programs\Cryptocat, a
; Start-menu entry, the cryptocat: URL scheme, the toast notifications' AppUserModelID, an
; entry in "Installed apps" with the uninstaller; optionally the command-line client and
; the relay in bin\, added to the user's PATH. Everything is under HKCU.
;
; Silent install: Cryptocat-VERSION-x64-setup.exe /S [/CLI] [/D=C:\path]  (/D last)
; Silent uninstall: "%LOCALAPPDATA%\Programs\Cryptocat\uninstall.exe" /S

Unicode true
Target amd64-unicode
!ifdef COMPRESSOR
  SetCompressor ${COMPRESSOR}
!else
  SetCompressor /SOLID lzma
!endif
RequestExecutionLevel user
ManifestDPIAware true

!ifndef VERSION
  !error "makensis -DVERSION=X.Y.Z"
!endif
!ifndef BUILD
  !error "makensis -DBUILD=DIR (the directory with the .exe files)"
!endif
!ifndef OUTFILE
  !error "makensis -DOUTFILE=FILE"
!endif

; tauri.conf.json's identifier: the app's data directory (%LOCALAPPDATA%\IDENTIFIER) and
; the AppUserModelID its notifications carry (src-tauri/src/notify.rs).
!define IDENTIFIER "cat.crypto.Cryptocat"
; The identifier before it (src-tauri/src/state.rs LEGACY_IDENTIFIER): an update removes
; its toast registration; the app moves the built-in server's key from its data directory.
!define LEGACY_IDENTIFIER "invalid.cryptocat.desktop"
!define SETTINGS_KEY "Software\Cryptocat"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\Cryptocat"
!define SCHEME_KEY "Software\Classes\cryptocat"
!define AUMID_KEY "Software\Classes\AppUserModelId\${IDENTIFIER}"
!define LEGACY_AUMID_KEY "Software\Classes\AppUserModelId\${LEGACY_IDENTIFIER}"
; The WebView2 Runtime's client id (Microsoft's "Distribute your app and the WebView2
; Runtime": a runtime is installed when its `pv` value is set and not 0.0.0.0).
!define WEBVIEW2_KEY "Microsoft\EdgeUpdate\Clients\{F3017226-FE2A-4295-8BDF-00C3A9A7E4C5}"
!define WEBVIEW2_PAGE "https://developer.microsoft.com/microsoft-edge/webview2/"

Name "Cryptocat"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\Cryptocat"
InstallDirRegKey HKCU "${SETTINGS_KEY}" "InstallDir"
BrandingText "Cryptocat ${VERSION}"
VIProductVersion "${VERSION}.0"
VIAddVersionKey "ProductName" "Cryptocat"
VIAddVersionKey "ProductVersion" "${VERSION}"
VIAddVersionKey "FileVersion" "${VERSION}"
VIAddVersionKey "FileDescription" "Cryptocat installer"
VIAddVersionKey "LegalCopyright" "Copyright (C) Cryptocat developers, AGPL-3.0-or-later"

!include MUI2.nsh
!include FileFunc.nsh
!include LogicLib.nsh
!include Sections.nsh
!include WinMessages.nsh

!define MUI_ICON "../../icons/icon.ico"
!define MUI_UNICON "../../icons/icon.ico"
!define MUI_ABORTWARNING
!define MUI_COMPONENTSPAGE_SMALLDESC
!define MUI_FINISHPAGE_RUN "$INSTDIR\cryptocat-desktop.exe"
!define MUI_FINISHPAGE_RUN_TEXT "Start Cryptocat"

!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

Section "Cryptocat" SecApp
  SectionIn RO
  SetShellVarContext current
  SetOutPath "$INSTDIR"
  File "${BUILD}/cryptocat-desktop.exe"
  ; The GNU build loads the WebView2 loader from a DLL beside the program.
  File "${BUILD}/WebView2Loader.dll"
  File "/oname=cryptocat.png" "../../icons/128x128.png"
  WriteUninstaller "$INSTDIR\uninstall.exe"

  CreateShortcut "$SMPROGRAMS\Cryptocat.lnk" "$INSTDIR\cryptocat-desktop.exe" "" \
    "$INSTDIR\cryptocat-desktop.exe" 0 SW_SHOWNORMAL "" "End-to-end encrypted chat"

  ; Invite links (cryptocat://join?...): the app takes the link as its first argument and
  ; hands it to the running app (one instance).
  WriteRegStr HKCU "${SCHEME_KEY}" "" "URL:Cryptocat invite link"
  WriteRegStr HKCU "${SCHEME_KEY}" "URL Protocol" ""
  WriteRegStr HKCU "${SCHEME_KEY}\DefaultIcon" "" "$INSTDIR\cryptocat-desktop.exe,0"
  WriteRegStr HKCU "${SCHEME_KEY}\shell\open\command" "" '"$INSTDIR\cryptocat-desktop.exe" "%1"'

  ; Toast notifications of a program that is not an app package name it by this id.
  WriteRegStr HKCU "${AUMID_KEY}" "DisplayName" "Cryptocat"
  WriteRegStr HKCU "${AUMID_KEY}" "IconUri" "$INSTDIR\cryptocat.png"
  DeleteRegKey HKCU "${LEGACY_AUMID_KEY}"

  WriteRegStr HKCU "${SETTINGS_KEY}" "InstallDir" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "Cryptocat"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "Cryptocat"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\cryptocat-desktop.exe,0"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1

  Call CheckWebView2
SectionEnd

Section /o "Command-line tools on PATH" SecCli
  SetOutPath "$INSTDIR\bin"
  File "${BUILD}/cryptocat.exe"
  File "${BUILD}/cryptocat-server.exe"
  WriteRegDWORD HKCU "${SETTINGS_KEY}" "CommandLineTools" 1
  Call AddBinToPath
SectionEnd

; Runs last: the size in "Installed apps", and the command-line tools of an earlier
; install removed when they were not picked this time.
Section "-Finish"
  ${IfNot} ${SectionIsSelected} ${SecCli}
    Delete "$INSTDIR\bin\cryptocat.exe"
    Delete "$INSTDIR\bin\cryptocat-server.exe"
    RMDir "$INSTDIR\bin"
    WriteRegDWORD HKCU "${SETTINGS_KEY}" "CommandLineTools" 0
    Call RemoveBinFromPath
  ${EndIf}
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  IntFmt $0 "0x%08X" $0
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "EstimatedSize" "$0"
  ; Explorer rereads the URL schemes.
  System::Call 'shell32::SHChangeNotify(i 0x08000000, i 0, p 0, p 0)'
SectionEnd

!insertmacro MUI_FUNCTION_DESCRIPTION_BEGIN
  !insertmacro MUI_DESCRIPTION_TEXT ${SecApp} "The Cryptocat app, a Start-menu entry, and cryptocat: invite links opened in the app."
  !insertmacro MUI_DESCRIPTION_TEXT ${SecCli} "cryptocat (the command-line client) and cryptocat-server (the relay) in bin\, added to your PATH."
!insertmacro MUI_FUNCTION_DESCRIPTION_END

Function .onInit
  ; /CLI picks the command-line tools (for silent installs); an earlier install that had
  ; them keeps them.
  ${GetParameters} $0
  ClearErrors
  ${GetOptions} $0 "/CLI" $1
  ${IfNot} ${Errors}
    !insertmacro SelectSection ${SecCli}
  ${EndIf}
  ReadRegDWORD $1 HKCU "${SETTINGS_KEY}" "CommandLineTools"
  ${If} $1 = 1
    !insertmacro SelectSection ${SecCli}
  ${EndIf}
FunctionEnd

; The app's window is Microsoft Edge WebView2, part of Windows 10 and 11. Where it is
; missing, say so and offer Microsoft's download page (nothing is downloaded here).
Function CheckWebView2
  ReadRegStr $0 HKLM "SOFTWARE\WOW6432Node\${WEBVIEW2_KEY}" "pv"
  ${If} $0 == ""
  ${OrIf} $0 == "0.0.0.0"
    ReadRegStr $0 HKLM "SOFTWARE\${WEBVIEW2_KEY}" "pv"
  ${EndIf}
  ${If} $0 == ""
  ${OrIf} $0 == "0.0.0.0"
    ReadRegStr $0 HKCU "Software\${WEBVIEW2_KEY}" "pv"
  ${EndIf}
  ${If} $0 == ""
  ${OrIf} $0 == "0.0.0.0"
    DetailPrint "Microsoft Edge WebView2 Runtime: missing"
    MessageBox MB_YESNO|MB_ICONEXCLAMATION "Cryptocat shows its window with Microsoft Edge WebView2, which Windows 10 and 11 include but this computer lacks: without it the app cannot open its window (the command-line client works).$\n$\nInstall the WebView2 Runtime (the Evergreen Bootstrapper or Standalone Installer from Microsoft's page, or ask your administrator), then start Cryptocat.$\n$\nOpen Microsoft's WebView2 page now?" /SD IDNO IDNO +2
      ExecShell "open" "${WEBVIEW2_PAGE}"
  ${Else}
    DetailPrint "Microsoft Edge WebView2 Runtime: $0"
  ${EndIf}
FunctionEnd

; The user's PATH (HKCU\Environment\Path) with or without $INSTDIR\bin. NSIS strings hold
; at most 1024 characters: a longer PATH would come back cut, so it is left alone and the
; person told what to add.
!macro PATH_FUNCTIONS un
  ; $R0: a PATH; $R1: the entry to drop. Out: $R2, $R0 without $R1 (compared without
  ; regard to case, as Windows compares paths; empty entries dropped).
  Function ${un}PathWithout
    StrCpy $R2 ""
    StrCpy $R3 ""
    StrCpy $R4 0
    StrLen $R5 $R0
    ${Do}
      ${If} $R4 >= $R5
        StrCpy $R6 ";"
      ${Else}
        StrCpy $R6 $R0 1 $R4
      ${EndIf}
      ${If} $R6 == ";"
        ${If} $R3 != ""
        ${AndIf} $R3 != $R1
        ${AndIf} $R3 != "$R1\"
          ${If} $R2 == ""
            StrCpy $R2 $R3
          ${Else}
            StrCpy $R2 "$R2;$R3"
          ${EndIf}
        ${EndIf}
        StrCpy $R3 ""
      ${Else}
        StrCpy $R3 "$R3$R6"
      ${EndIf}
      IntOp $R4 $R4 + 1
    ${LoopUntil} $R4 > $R5
  FunctionEnd

  Function ${un}RemoveBinFromPath
    ReadRegDWORD $0 HKCU "${SETTINGS_KEY}" "PathAdded"
    ${If} $0 <> 1
      Return
    ${EndIf}
    ReadRegStr $R0 HKCU "Environment" "Path"
    StrLen $0 $R0
    ${If} $0 >= 1023
      DetailPrint "PATH too long to change: remove $INSTDIR\bin from it yourself"
      MessageBox MB_OK|MB_ICONINFORMATION "Your PATH is too long for this installer to change safely. Remove $INSTDIR\bin from it yourself (Settings, System, About, Advanced system settings, Environment Variables)." /SD IDOK
      Return
    ${EndIf}
    StrCpy $R1 "$INSTDIR\bin"
    Call ${un}PathWithout
    ${If} $R2 == ""
      DeleteRegValue HKCU "Environment" "Path"
    ${Else}
      WriteRegExpandStr HKCU "Environment" "Path" $R2
    ${EndIf}
    DeleteRegValue HKCU "${SETTINGS_KEY}" "PathAdded"
    SendMessage ${HWND_BROADCAST} ${WM_SETTINGCHANGE} 0 "STR:Environment" /TIMEOUT=5000
  FunctionEnd
!macroend
!insertmacro PATH_FUNCTIONS ""
!insertmacro PATH_FUNCTIONS "un."

Function AddBinToPath
  ReadRegStr $R0 HKCU "Environment" "Path"
  StrLen $0 $R0
  StrLen $1 "$INSTDIR\bin"
  IntOp $0 $0 + $1
  ${If} $0 >= 1022
    DetailPrint "PATH too long to change: add $INSTDIR\bin to it yourself"
    MessageBox MB_OK|MB_ICONINFORMATION "Your PATH is too long for this installer to change safely. Add $INSTDIR\bin to it yourself (Settings, System, About, Advanced system settings, Environment Variables)." /SD IDOK
    Return
  ${EndIf}
  StrCpy $R1 "$INSTDIR\bin"
  Call PathWithout
  ${If} $R2 == ""
    StrCpy $R2 "$INSTDIR\bin"
  ${Else}
    StrCpy $R2 "$R2;$INSTDIR\bin"
  ${EndIf}
  WriteRegExpandStr HKCU "Environment" "Path" $R2
  WriteRegDWORD HKCU "${SETTINGS_KEY}" "PathAdded" 1
  SendMessage ${HWND_BROADCAST} ${WM_SETTINGCHANGE} 0 "STR:Environment" /TIMEOUT=5000
FunctionEnd

Section "Uninstall"
  SetShellVarContext current
  Call un.RemoveBinFromPath
  Delete "$INSTDIR\cryptocat-desktop.exe"
  Delete "$INSTDIR\WebView2Loader.dll"
  Delete "$INSTDIR\cryptocat.png"
  Delete "$INSTDIR\bin\cryptocat.exe"
  Delete "$INSTDIR\bin\cryptocat-server.exe"
  Delete "$INSTDIR\uninstall.exe"
  RMDir "$INSTDIR\bin"
  RMDir "$INSTDIR"
  Delete "$SMPROGRAMS\Cryptocat.lnk"
  DeleteRegKey HKCU "${SCHEME_KEY}"
  DeleteRegKey HKCU "${AUMID_KEY}"
  DeleteRegKey HKCU "${LEGACY_AUMID_KEY}"
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
  DeleteRegKey HKCU "${SETTINGS_KEY}"
  System::Call 'shell32::SHChangeNotify(i 0x08000000, i 0, p 0, p 0)'
  ; The data directory holds the built-in server's key (its invite links stop working
  ; without it) and the window's web cache; kept unless the person says otherwise.
  ; Identities kept with "Remember my identity" are in Credential Manager: "Forget" in
  ; the app's settings deletes them.
  ${If} ${FileExists} "$LOCALAPPDATA\${IDENTIFIER}\*.*"
    MessageBox MB_YESNO|MB_ICONQUESTION "Also delete Cryptocat's data on this computer ($LOCALAPPDATA\${IDENTIFIER}: the built-in server's key, so the invite links to it stop working)?$\n$\nAn identity kept with $\"Remember my identity$\" stays in Credential Manager: use Forget in Cryptocat's settings first to delete it." /SD IDNO IDNO +3
      RMDir /r "$LOCALAPPDATA\${IDENTIFIER}"
      ; What the app did not move from the former identifier's (the window's web cache).
      RMDir /r "$LOCALAPPDATA\${LEGACY_IDENTIFIER}"
  ${EndIf}
SectionEnd
